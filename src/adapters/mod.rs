//! Adapters: the ports' implementations on AWS and GitHub ([`ecr`], [`github`]), and the other
//! outside-world pieces the entry points share: SDK configuration ([`aws`]), the cached secret
//! reader ([`secrets`]) and CloudWatch embedded metrics ([`metrics`]).

pub mod aws;
pub mod ecr;
pub mod github;
pub mod metrics;
pub mod secrets;
pub mod sqs;
