//! ECR's errors and failure codes in the port's terms: which answers mean "the repository is
//! gone", which a retry may fix (throttles, 5xx, no answer), and the per-call configuration that
//! keeps the SDK from retrying a delete on its own.

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::config::retry::RetryConfig;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageError;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::ImageFailureCode;

use crate::adapters::aws::sentence_of;
use crate::app::ports::RegistryError;

/// Operation errors that can say "the repository does not exist".
pub(super) trait RepositoryMissing {
    fn repository_missing(&self) -> bool;
}

macro_rules! repository_missing {
    ($($error:ty),*) => {$(
        impl RepositoryMissing for $error {
            fn repository_missing(&self) -> bool {
                self.is_repository_not_found_exception()
            }
        }
    )*};
}
repository_missing!(
    DescribeImagesError,
    BatchGetImageError,
    BatchDeleteImageError,
    PutImageError
);

impl RepositoryMissing for DescribeRepositoriesError {
    fn repository_missing(&self) -> bool {
        false
    }
}

/// Error codes ECR (and the AWS front door) use for throttling and server-side trouble.
const TRANSIENT_CODES: [&str; 6] = [
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailableException",
    "ServerException",
];

/// A failure a retry may fix: no answer (timeout, dropped connection, unreadable response), a
/// throttle, or a 5xx.
fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// The credentials provider failed (none found, SSO token expired, `credential_process` failed):
/// told apart by the error's type in its source chain, not by its wording.
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    credentials_error(err).is_some()
}

/// One sentence for an SDK error: the service's code and message, or for a call that got no
/// answer, its innermost cause (a credentials provider's own words, a refused connection).
pub fn sentence<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(message)) => message.to_owned(),
                (None, None) => format!("HTTP {}", service.raw().status().as_u16()),
            }
        }
        SdkError::TimeoutError(_) => "no answer within the SDK's timeout".to_owned(),
        SdkError::ResponseError(_) => "the answer could not be read".to_owned(),
        _ => match credentials_error(err) {
            Some(credentials) => sentence_of(credentials),
            None => sentence_of(err),
        },
    }
}

/// The credentials provider's error in `err`'s source chain, if that is what failed.
fn credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return Some(e);
        }
        current = e.source();
    }
    None
}

/// IAM, a repository policy or an SCP refused the call.
fn is_access_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() == 403
                || service
                    .err()
                    .code()
                    .is_some_and(|code| code == "AccessDeniedException" || code == "AccessDenied")
        }
        _ => false,
    }
}

pub(super) fn api_error<E>(
    operation: &'static str,
    repository: &str,
    err: SdkError<E, HttpResponse>,
) -> RegistryError
where
    E: RepositoryMissing + ProvideErrorMetadata + std::error::Error + 'static,
{
    if err
        .as_service_error()
        .is_some_and(|e| e.repository_missing())
    {
        return RegistryError::RepositoryNotFound {
            repository: repository.to_owned(),
        };
    }
    // The SDK's whole context (a kilobyte of nested debug output) goes to the debug log; errors
    // carry one sentence a person can act on.
    lambda_runtime::tracing::debug!(operation, repository, error = %DisplayErrorContext(&err), "ECR call failed");
    let message = sentence(&err);
    let repository = repository.to_owned();
    if caused_by_credentials(&err) {
        return RegistryError::NoCredentials {
            operation,
            repository,
            message,
        };
    }
    if is_access_denied(&err) {
        return RegistryError::AccessDenied {
            operation,
            repository,
            message,
        };
    }
    if is_transient(&err) {
        RegistryError::Transient {
            operation,
            repository,
            message,
        }
    } else {
        RegistryError::Api {
            operation,
            repository,
            message,
        }
    }
}

/// Per-call configuration for BatchDeleteImage: no SDK retries, because a retry must follow a
/// fresh re-check of the batch (the use case does both).
pub(super) fn no_retries() -> aws_sdk_ecr::config::Builder {
    aws_sdk_ecr::config::Builder::default().retry_config(RetryConfig::disabled())
}

pub(super) fn is_image_not_found(err: &SdkError<DescribeImagesError, HttpResponse>) -> bool {
    matches!(
        err.as_service_error(),
        Some(DescribeImagesError::ImageNotFoundException(_))
    )
}

pub(super) fn code_of(code: Option<&ImageFailureCode>) -> Option<&str> {
    code.map(|c| c.as_str())
}
