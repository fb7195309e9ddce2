-- id: NHI-GOV-002
-- name: recertification_overdue
-- kind: state
-- severity: medium
-- key: identity
-- frameworks: NIST-AI-RMF:GOVERN, NIST-CSF:PR.AA, OWASP-NHI:NHI5
-- posture: recertification_overdue
-- summary: Identity {identity} holds access but was last certified at {last_certified_at}, more than {cadence} ago.
-- remediation: Have the business owner recertify the identity's purpose and scopes, or offboard it.
--
-- An identity holding access past the cadence since its last approval or recertification
-- (or registration, when never certified).
SELECT
    sid,
    identity,
    certified_at,
    COALESCE(certified_at, registered_at) AS last_certified_at,
    holding_since,
    GREATEST(COALESCE(certified_at, registered_at) + ${cadence}, holding_since) AS opened_at,
    COALESCE(certified_at, registered_at) + ${cadence} >= holding_since AS strict
FROM identities
WHERE holding_since IS NOT NULL
  AND offboarded_at IS NULL
