-- id: NHI-GOV-001
-- name: unapproved_activation
-- kind: window
-- severity: high
-- key: identity
-- frameworks: NIST-AI-RMF:GOVERN, OWASP-ASI:ASI03, OWASP-NHI:NHI5, NIST-CSF:GV.PO
-- summary: Identity {identity} was active ({events} event(s)) before any approval.
-- remediation: Suspend the identity until its business owner approves it with a scope baseline.
--
-- A credential use or tool call by an identity without an approval at that time. A
-- draft_only identity's public or internal tool calls are exempt.
SELECT
    identity,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(*) AS events,
    array_agg(event_id ORDER BY seq) AS event_ids
FROM activity
WHERE NOT identity_approved
  AND NOT identity_offboarded
  AND NOT COALESCE(
    event_type = 'tool.called'
      AND identity_tier = 'draft_only'
      AND sensitivity IN ('public', 'internal'),
    false
  )
GROUP BY identity, window_start, window_end
