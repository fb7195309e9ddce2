-- id: NHI-GOV-003
-- name: missing_owner
-- kind: state
-- severity: medium
-- key: identity
-- frameworks: NIST-AI-RMF:GOVERN, NIST-CSF:GV.RR, OWASP-NHI:NHI1
-- summary: Identity {identity} registered at {registered_at} still lacks {missing} more than {grace} later.
-- remediation: Assign both a business owner (approver) and a technical custodian.
--
-- An identity without a business owner or technical custodian past the grace.
SELECT
    sid,
    identity,
    business_owner,
    technical_custodian,
    registered_at,
    CASE
        WHEN business_owner IS NULL AND technical_custodian IS NULL THEN 'a business owner and a technical custodian'
        WHEN business_owner IS NULL THEN 'a business owner'
        ELSE 'a technical custodian'
    END AS missing,
    registered_at + ${grace} AS opened_at,
    true AS strict
FROM identities
WHERE (business_owner IS NULL OR technical_custodian IS NULL)
  AND offboarded_at IS NULL
