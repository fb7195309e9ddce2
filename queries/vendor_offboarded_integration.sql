-- id: NHI-ORPH-002
-- name: vendor_offboarded_integration
-- kind: state
-- severity: high
-- key: vendor
-- frameworks: OWASP-NHI:NHI3, OWASP-NHI:NHI1, CSA-MAESTRO, NIST-CSF:GV.SC
-- summary: Vendor {vendor} linked to {identity} was offboarded at {vendor_offboarded_at}, but the identity still holds access.
-- remediation: Revoke the integration's credentials and grants on every platform it spans; confirm the vendor's side is removed too.
--
-- A linked vendor that was offboarded while the identity holds an active credential or grant.
SELECT
    v.sid,
    v.identity,
    v.vendor,
    v.linked_at,
    v.offboarded_at AS vendor_offboarded_at,
    GREATEST(v.offboarded_at, v.linked_at, i.holding_since) AS opened_at
FROM vendors v
JOIN identities i ON v.sid = i.sid
WHERE v.offboarded_at IS NOT NULL
  AND i.holding_since IS NOT NULL
  AND i.offboarded_at IS NULL
