-- id: NHI-SCOPE-002
-- name: grant_drift
-- kind: state
-- severity: high
-- key: scope
-- frameworks: OWASP-NHI:NHI5, OWASP-ASI:ASI03, NIST-CSF:PR.AA
-- summary: Scope {scope} granted to {identity} at {granted_at} has been outside its approved baseline for longer than {grace}.
-- remediation: Revoke the grant, or have the business owner approve the scope so the baseline matches what is granted.
--
-- A granted scope outside the approved baseline (empty when never approved) past the grace.
SELECT
    g.sid,
    g.identity,
    g.scope,
    g.granted_at,
    g.outside_baseline_since,
    GREATEST(g.granted_at + ${grace}, g.outside_baseline_since) AS opened_at,
    g.granted_at + ${grace} >= g.outside_baseline_since AS strict
FROM grants g
JOIN identities i ON g.sid = i.sid
WHERE NOT g.in_baseline
  AND i.offboarded_at IS NULL
