-- id: NHI-SCOPE-003
-- name: unused_grant
-- kind: state
-- severity: low
-- key: scope
-- frameworks: OWASP-NHI:NHI5, NIST-CSF:PR.AA
-- summary: Scope {scope} of {identity} has not been exercised for more than {period} (last exercise or grant: {last_seen_at}).
-- remediation: Revoke the unused scope (least privilege); re-grant it just in time if it is needed again.
--
-- A granted scope not exercised by a tool call for the period, counting from the grant.
SELECT
    g.sid,
    g.identity,
    g.scope,
    g.granted_at,
    g.last_exercised_at,
    GREATEST(g.granted_at, COALESCE(g.last_exercised_at, g.granted_at)) AS last_seen_at,
    GREATEST(g.granted_at, COALESCE(g.last_exercised_at, g.granted_at)) + ${period} AS opened_at,
    true AS strict
FROM grants g
JOIN identities i ON g.sid = i.sid
WHERE i.offboarded_at IS NULL
