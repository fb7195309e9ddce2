-- id: NHI-SCOPE-001
-- name: unapproved_scope_use
-- kind: window
-- severity: high
-- key: scope, tool
-- frameworks: OWASP-NHI:NHI5, OWASP-ASI:ASI02, OWASP-ASI:ASI03, NIST-AI-RMF:MANAGE, CSA-MAESTRO
-- summary: Identity {identity} exercised {what} outside its approved baseline in {calls} call(s).
-- remediation: Block the call path or get the scope or tool approved; review what the calls did.
--
-- Tool calls of an identity with an approved baseline that exercised a scope outside it,
-- or called a tool outside the approved tools (when tools were approved).
SELECT
    identity,
    scope,
    CAST(NULL AS VARCHAR) AS tool,
    'scope ' || scope AS what,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(*) AS calls,
    array_agg(event_id ORDER BY seq) AS event_ids
FROM call_scopes
WHERE has_baseline
  AND NOT in_baseline
  AND NOT identity_offboarded
GROUP BY identity, scope, window_start, window_end
UNION ALL
SELECT
    identity,
    CAST(NULL AS VARCHAR) AS scope,
    tool,
    'tool ' || tool AS what,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(*) AS calls,
    array_agg(event_id ORDER BY seq) AS event_ids
FROM activity
WHERE event_type = 'tool.called'
  AND has_baseline
  AND tools_checked
  AND NOT COALESCE(tool_approved, false)
  AND NOT identity_offboarded
GROUP BY identity, tool, window_start, window_end
