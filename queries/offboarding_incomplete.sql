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
WITH offboarded AS (
    SELECT sid, identity, offboarded_at, holding_since
    FROM identities
    WHERE offboarded_at IS NOT NULL
      AND holding_since IS NOT NULL
), active AS (
    SELECT c.sid, array_agg(c.credential ORDER BY c.credential) AS active_credentials
    FROM credentials c
    JOIN offboarded o ON c.sid = o.sid
    GROUP BY c.sid
), granted AS (
    SELECT g.sid, array_agg(g.scope ORDER BY g.scope) AS granted_scopes
    FROM grants g
    JOIN offboarded o ON g.sid = o.sid
    GROUP BY g.sid
)
SELECT
    o.sid,
    o.identity,
    o.offboarded_at,
    a.active_credentials,
    g.granted_scopes,
    GREATEST(o.offboarded_at + ${grace}, o.holding_since) AS opened_at,
    o.offboarded_at + ${grace} >= o.holding_since AS strict
FROM offboarded o
LEFT JOIN active a ON a.sid = o.sid
LEFT JOIN granted g ON g.sid = o.sid
