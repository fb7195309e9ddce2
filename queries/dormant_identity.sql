-- id: NHI-STALE-002
-- name: dormant_identity
-- kind: state
-- severity: medium
-- key: identity
-- frameworks: OWASP-NHI:NHI1, NIST-CSF:PR.AA, NIST-AI-RMF:GOVERN
-- summary: Identity {identity} still holds access but has had no activity for more than {period} (last activity or registration: {last_seen_at}).
-- remediation: Confirm with the owner whether the identity is still needed; offboard it and revoke its credentials and grants if not.
--
-- An identity holding an active credential or grant with no activity for the period.
SELECT
    sid,
    identity,
    last_activity_at,
    registered_at,
    holding_since,
    COALESCE(last_activity_at, registered_at) AS last_seen_at,
    GREATEST(COALESCE(last_activity_at, registered_at) + ${period}, holding_since) AS opened_at,
    COALESCE(last_activity_at, registered_at) + ${period} >= holding_since AS strict
FROM identities
WHERE holding_since IS NOT NULL
  AND offboarded_at IS NULL
