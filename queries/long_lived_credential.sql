-- id: NHI-ROT-002
-- name: long_lived_credential
-- kind: state
-- severity: high
-- key: credential
-- frameworks: OWASP-NHI:NHI7, OWASP-ASI:ASI03, NIST-CSF:PR.AA
-- summary: Short-lived {kind} {credential} of {identity} has no expiry or one beyond its kind's maximum lifetime (jit {jit_max_ttl}, svid {svid_max_ttl}, oauth {oauth_max_ttl}).
-- remediation: Reissue the credential with an expiry within the kind's maximum lifetime and revoke the long-lived one.
--
-- An active short-lived-kind credential issued without expiry or with one past the kind's
-- maximum TTL (measured from issue, or from an in-place rotation that set a new expiry).
SELECT
    sid,
    identity,
    credential,
    kind,
    expires,
    COALESCE(rotated_at, issued_at) AS opened_at
FROM credentials
WHERE kind IN ('oauth_token', 'jit_token', 'workload_svid')
  AND (
    expires IS NULL
    OR expires > COALESCE(rotated_at, issued_at) + CASE kind
        WHEN 'jit_token' THEN ${jit_max_ttl}
        WHEN 'workload_svid' THEN ${svid_max_ttl}
        ELSE ${oauth_max_ttl}
    END
  )
