-- id: NHI-OFF-002
-- name: offboarding_incomplete
-- kind: state
-- severity: critical
-- key: identity
-- frameworks: OWASP-NHI:NHI1, NIST-CSF:PR.AA, NIST-AI-RMF:GOVERN
-- summary: Identity {identity} was offboarded at {offboarded_at} but still holds access more than {grace} later.
-- remediation: Revoke every remaining credential and grant of the offboarded identity and check the offboarding runbook.
--
-- An offboarded identity still holding an active credential or grant past the grace.
WITH active AS (
    SELECT sid, array_agg(credential ORDER BY credential) AS active_credentials
    FROM credentials
    GROUP BY sid
), granted AS (
    SELECT sid, array_agg(scope ORDER BY scope) AS granted_scopes
    FROM grants
    GROUP BY sid
)
SELECT
    i.sid,
    i.identity,
    i.offboarded_at,
    a.active_credentials,
    g.granted_scopes,
    GREATEST(i.offboarded_at + ${grace}, i.holding_since) AS opened_at,
    i.offboarded_at + ${grace} >= i.holding_since AS strict
FROM identities i
LEFT JOIN active a ON a.sid = i.sid
LEFT JOIN granted g ON g.sid = i.sid
WHERE i.offboarded_at IS NOT NULL
  AND i.holding_since IS NOT NULL
