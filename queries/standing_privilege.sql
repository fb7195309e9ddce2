-- id: NHI-PRIV-001
-- name: standing_privilege
-- kind: window
-- severity: high
-- key: tool
-- frameworks: OWASP-NHI:NHI5, OWASP-ASI:ASI03, CSA-MAESTRO, NIST-CSF:PR.AA
-- summary: Identity {identity} called {tool} ({calls} call(s)) with standing access: no active JIT token and no request-time approval.
-- remediation: Require a JIT credential per task or a request-time approval for privileged and restricted tool calls.
--
-- A tool call by a privileged-tier identity, or with restricted sensitivity, that used no
-- active jit_token and carried no approval.
SELECT
    identity,
    tool,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(*) AS calls,
    array_agg(event_id ORDER BY seq) AS event_ids
FROM activity
WHERE event_type = 'tool.called'
  AND NOT identity_offboarded
  AND approval IS NULL
  AND (identity_tier = 'privileged' OR sensitivity = 'restricted')
  AND NOT COALESCE(credential_kind = 'jit_token' AND credential_status = 'active', false)
GROUP BY identity, tool, window_start, window_end
