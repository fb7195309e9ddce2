-- id: NHI-OFF-001
-- name: use_after_offboarding
-- kind: window
-- severity: critical
-- key: credential
-- frameworks: OWASP-NHI:NHI1, OWASP-ASI:ASI03, NIST-CSF:DE.CM
-- summary: Credential {credential} of {identity} was used {uses} time(s) although it is {statuses_text}.
-- remediation: Treat as a possible compromise: block the credential at the provider, find the caller, and rotate anything it could reach.
--
-- A use of a credential that is revoked, retired, expired, or belongs to an offboarded identity.
SELECT
    COALESCE(credential_identity, identity) AS identity,
    credential,
    window_start,
    window_end,
    MIN(time) AS opened_at,
    COUNT(*) AS uses,
    array_sort(array_agg(DISTINCT CASE WHEN credential_owner_offboarded AND credential_status = 'active' THEN 'owned by an offboarded identity' ELSE credential_status END)) AS statuses,
    array_to_string(array_sort(array_agg(DISTINCT CASE WHEN credential_owner_offboarded AND credential_status = 'active' THEN 'owned by an offboarded identity' ELSE credential_status END)), ', ') AS statuses_text,
    array_agg(event_id ORDER BY seq) AS event_ids
FROM activity
WHERE credential IS NOT NULL
  AND (credential_status <> 'active' OR COALESCE(credential_owner_offboarded, false))
GROUP BY COALESCE(credential_identity, identity), credential, window_start, window_end
