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
    #[error("stack {stack} has no webhook secret from the retired GitHubWebhookSecret parameter: nothing to move")]
    NothingToMove { stack: String },
    #[error("{action} failed: {message}")]
    Call {
        action: &'static str,
        message: String,
    },
}

/// A CloudFormation call's failure, told apart by its code and words.
fn cloudformation_error<'s, E>(
    action: &'static str,
    stack: &'s str,
) -> impl FnOnce(aws_sdk_cloudformation::error::SdkError<E>) -> StackError + 's
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| {
        let code = aws_sdk_cloudformation::error::ProvideErrorMetadata::code(&e)
            .unwrap_or_default()
            .to_owned();
        let message = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
        classify(action, &code, message, stack)
    }
}

/// The physical ID of `stack`'s resource `logical_id` (one DescribeStackResource).
async fn physical_id(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
    logical_id: &str,
) -> Result<Option<String>, StackError> {
    let resource = cloudformation
        .describe_stack_resource()
        .stack_name(stack)
        .logical_resource_id(logical_id)
        .send()
        .await
        .map_err(cloudformation_error(
            "cloudformation:DescribeStackResource",
            stack,
        ))?;
    Ok(resource
        .stack_resource_detail()
        .and_then(|d| d.physical_resource_id())
        .filter(|id| !id.is_empty())
        .map(str::to_owned))
}

/// Finds `stack`'s pruner and reads its environment (two calls:
/// `cloudformation:DescribeStackResource`, `lambda:GetFunctionConfiguration`).
pub async fn deployed_pruner(
    cloudformation: &aws_sdk_cloudformation::Client,
    lambda: &aws_sdk_lambda::Client,
    stack: &str,
) -> Result<DeployedPruner, StackError> {
    let function = physical_id(cloudformation, stack, PRUNER_LOGICAL_ID)
        .await?
        .ok_or_else(|| StackError::NoPruner {
            stack: stack.to_owned(),
        })?;
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

/// The logical ID of the secret a 0.2.0 stack made from its `GitHubWebhookSecret` parameter.
pub const WEBHOOK_SECRET_LOGICAL_ID: &str = "WebhookSecret";

/// Where a stack's webhook secret now lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedSecret {
    /// The stack's own secret (deleted by the deploy that retires the parameter).
    pub from: String,
    /// The secret holding the same value, to pass as `GitHubWebhookSecretArn`.
    pub to: String,
    /// The secret already existed with the same value (a second run).
    pub reused: bool,
}

/// Copies the webhook secret of a stack deployed with the retired `GitHubWebhookSecret` into a
/// secret of its own, `<stack>/github-webhook-secret`, outside the stack: the deploy that retires
/// the parameter deletes the stack's copy, and GitHub keeps signing with this value. Idempotent:
/// an existing secret of that name with the same value is reused, a different value is an error.
pub async fn move_webhook_secret(
    cloudformation: &aws_sdk_cloudformation::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    stack: &str,
) -> Result<MovedSecret, StackError> {
    let described = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(cloudformation_error("cloudformation:DescribeStacks", stack))?;
    let from_parameter = described
        .stacks()
        .first()
        .map(|s| {
            s.parameters().iter().any(|p| {
                p.parameter_key() == Some("GitHubWebhookSecret")
                    && !p.parameter_value().unwrap_or_default().is_empty()
            })
        })
        .unwrap_or(false);
    if !from_parameter {
        return Err(StackError::NothingToMove {
            stack: stack.to_owned(),
        });
    }
    let from = match physical_id(cloudformation, stack, WEBHOOK_SECRET_LOGICAL_ID).await {
        Ok(Some(arn)) => arn,
        Ok(None) | Err(StackError::NoPruner { .. }) => {
            return Err(StackError::NothingToMove {
                stack: stack.to_owned(),
            })
        }
        Err(other) => return Err(other),
    };
    let secret_call =
        |action: &'static str| move |e: String| StackError::Call { action, message: e };
    let value = read_secret(secrets, &from)
        .await
        .map_err(secret_call("secretsmanager:GetSecretValue"))?;
    let name = format!("{stack}/github-webhook-secret");
    let created = secrets
        .create_secret()
        .name(&name)
        .description(format!(
            "GitHub webhook secret of the ecr-cache-pruner stack {stack}, moved out of its retired GitHubWebhookSecret parameter."
        ))
        .secret_string(value.as_str())
        .send()
        .await;
    match created {
        Ok(out) => Ok(MovedSecret {
            from,
            to: out.arn().unwrap_or(&name).to_owned(),
            reused: false,
        }),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            let existing = secrets
                .describe_secret()
                .secret_id(&name)
                .send()
                .await
                .map_err(|e| StackError::Call {
                    action: "secretsmanager:DescribeSecret",
                    message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                })?;
            let arn = existing.arn().unwrap_or(&name).to_owned();
            let held = read_secret(secrets, &arn)
                .await
                .map_err(secret_call("secretsmanager:GetSecretValue"))?;
            if held != value {
                return Err(StackError::Call {
                    action: "secretsmanager:CreateSecret",
                    message: format!(
                        "a secret named {name} already exists with another value: delete or rename it, then run this again"
                    ),
                });
            }
            Ok(MovedSecret {
                from,
                to: arn,
                reused: true,
            })
        }
        Err(e) => Err(StackError::Call {
            action: "secretsmanager:CreateSecret",
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        }),
    }
}

async fn read_secret(secrets: &aws_sdk_secretsmanager::Client, id: &str) -> Result<String, String> {
    let out = secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string())?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| format!("secret {id} has no SecretString"))
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
