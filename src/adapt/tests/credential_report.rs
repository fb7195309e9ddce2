//! The IAM credential report, from its column reference in the IAM User Guide.

use super::{events, types};
use crate::adapt::Format;

const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated
<root_account>,arn:aws:iam::123456789012:root,2019-01-01T00:00:00+00:00,not_supported,2023-07-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A
ci-bot,arn:aws:iam::123456789012:user/bots/ci-bot,2021-03-01T09:00:00+00:00,false,N/A,N/A,N/A,false,true,2021-03-01T09:05:00+00:00,2023-06-30T12:00:00+00:00,us-east-1,s3,false,2022-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A
";

#[test]
fn key_ages_predating_the_logs_become_issues_and_last_uses() {
    let out = events(Format::AwsCredentialReport, REPORT);
    assert_eq!(
        types(&out),
        [
            "identity.registered",
            "credential.issued",
            "credential.used"
        ]
    );
    let identity = "arn:aws:iam::123456789012:user/ci-bot";
    assert_eq!(out[0]["identity"], identity, "path dropped");
    assert_eq!(out[1]["credential"], format!("access-key-1:{identity}"));
    assert_eq!(out[1]["kind"], "api_key");
    assert_eq!(out[1]["time"], "2021-03-01T09:05:00Z");
    assert_eq!(out[2]["time"], "2023-06-30T12:00:00Z");
    // Deterministic ids: the same report read twice deduplicates.
    assert_eq!(out, events(Format::AwsCredentialReport, REPORT));
}
