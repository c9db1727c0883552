//! The deployed pruner's rules, read through its stack: CloudFormation names the function behind
//! the logical ID `PrunerFunction`, Lambda gives its environment. The operator CLI judges with
//! exactly these variables, so a plan made from a shell says what the stack would do.

use std::collections::BTreeMap;

use thiserror::Error;

/// The logical ID of the pruner function in `template.yaml`.
pub const PRUNER_LOGICAL_ID: &str = "PrunerFunction";

/// The pruner of one deployed stack: its function and the environment it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedPruner {
    pub stack: String,
    pub function: String,
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StackError {
    #[error("stack {stack} does not exist in this region (check --stack and --region)")]
    StackNotFound { stack: String },
    #[error("stack {stack} has no {PRUNER_LOGICAL_ID}: is it an ecr-cache-pruner stack?")]
    NoPruner { stack: String },
    #[error("not allowed to read the stack's pruner ({action}): {message}")]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error("the pruner {function}'s environment cannot be read: {message}")]
    Environment { function: String, message: String },
    #[error("{action} failed: {message}")]
    Call {
        action: &'static str,
        message: String,
    },
}

/// Finds `stack`'s pruner and reads its environment (two calls:
/// `cloudformation:DescribeStackResource`, `lambda:GetFunctionConfiguration`).
pub async fn deployed_pruner(
    cloudformation: &aws_sdk_cloudformation::Client,
    lambda: &aws_sdk_lambda::Client,
    stack: &str,
) -> Result<DeployedPruner, StackError> {
    let resource = cloudformation
        .describe_stack_resource()
        .stack_name(stack)
        .logical_resource_id(PRUNER_LOGICAL_ID)
        .send()
        .await
        .map_err(|e| {
            let code = aws_sdk_cloudformation::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .to_owned();
            let message = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
            classify(
                "cloudformation:DescribeStackResource",
                &code,
                message,
                stack,
            )
        })?;
    let function = resource
        .stack_resource_detail()
        .and_then(|d| d.physical_resource_id())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| StackError::NoPruner {
            stack: stack.to_owned(),
        })?
        .to_owned();
    let configuration = lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .map_err(|e| {
            let code = aws_sdk_lambda::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .to_owned();
            let message = aws_sdk_lambda::error::DisplayErrorContext(&e).to_string();
            classify("lambda:GetFunctionConfiguration", &code, message, stack)
        })?;
    let environment = configuration.environment();
    // An environment encrypted with a key the caller cannot use comes back as an error, not as
    // variables: judging without them would be judging with defaults.
    if let Some(error) = environment.and_then(|e| e.error()) {
        return Err(StackError::Environment {
            function,
            message: format!(
                "{}: {}",
                error.error_code().unwrap_or("error"),
                error.message().unwrap_or_default()
            ),
        });
    }
    let variables = environment
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(DeployedPruner {
        stack: stack.to_owned(),
        function,
        variables,
    })
}

fn classify(action: &'static str, code: &str, message: String, stack: &str) -> StackError {
    let lower = message.to_ascii_lowercase();
    if code.contains("AccessDenied") || code == "UnauthorizedOperation" {
        StackError::AccessDenied { action, message }
    } else if code == "ValidationError"
        && lower.contains("resource")
        && lower.contains("does not exist")
    {
        StackError::NoPruner {
            stack: stack.to_owned(),
        }
    } else if code == "ValidationError" && lower.contains("does not exist") {
        StackError::StackNotFound {
            stack: stack.to_owned(),
        }
    } else if code == "ResourceNotFoundException" {
        // The stack names a function that is gone (deleted by hand): nothing to judge with.
        StackError::NoPruner {
            stack: stack.to_owned(),
        }
    } else {
        StackError::Call { action, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_apart_by_code_and_words() {
        let c = |code: &str, message: &str| classify("x", code, message.to_owned(), "s");
        assert!(matches!(
            c("ValidationError", "Stack 's' does not exist"),
            StackError::StackNotFound { .. }
        ));
        assert!(matches!(
            c(
                "ValidationError",
                "Resource PrunerFunction does not exist for stack s"
            ),
            StackError::NoPruner { .. }
        ));
        assert!(matches!(
            c("AccessDeniedException", "no"),
            StackError::AccessDenied { .. }
        ));
        assert!(matches!(
            c("ResourceNotFoundException", "Function not found"),
            StackError::NoPruner { .. }
        ));
        assert!(matches!(
            c("Throttling", "slow down"),
            StackError::Call { .. }
        ));
    }
}
