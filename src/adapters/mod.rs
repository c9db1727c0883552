//! Adapters: the ports' implementations on AWS and GitHub ([`ecr`], [`github`]), and the other
//! outside-world pieces the entry points share: SDK configuration ([`aws`]), the cached secret
//! reader ([`secrets`]), CloudWatch embedded metrics ([`metrics`]) and the deployed stack's rules
//! ([`stack`]).

pub mod aws;
pub mod ecr;
pub mod github;
pub mod metrics;
pub mod secrets;
pub mod sqs;
pub mod stack;
