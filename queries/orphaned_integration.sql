-- id: NHI-ORPH-001
-- name: orphaned_integration
-- kind: state
-- severity: high
-- key: principal
-- frameworks: OWASP-NHI:NHI1, NIST-AI-RMF:GOVERN, NIST-CSF:GV.RR
-- summary: {roles_text} {principal} of {identity} departed at {departed_at} and was not replaced, while the identity still holds access.
-- remediation: Assign a new business owner and technical custodian, or offboard the identity and revoke its access.
--
-- An assigned owner or custodian who departed, not replaced, while the identity holds
-- an active credential or grant.
SELECT
    o.sid,
    o.identity,
    o.principal,
    array_agg(o.role ORDER BY o.role) AS roles,
    array_to_string(array_agg(o.role ORDER BY o.role), ' and ') AS roles_text,
    MAX(o.departed_at) AS departed_at,
    GREATEST(MAX(o.departed_at), MIN(o.assigned_at), MAX(i.holding_since)) AS opened_at
FROM owners o
JOIN identities i ON o.sid = i.sid
WHERE o.departed_at IS NOT NULL
  AND i.holding_since IS NOT NULL
  AND i.offboarded_at IS NULL
GROUP BY o.sid, o.identity, o.principal
