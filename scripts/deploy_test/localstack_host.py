"""Starts LocalStack in host mode (no Docker) for the deploy test, with one patch.

Why the patch: creating a Lambda function makes LocalStack prepare its Docker runtime (download the
runtime-init binary, pull the runtime image). Without Docker that fails and so does the stack. The
deploy test never invokes a function (it checks what the template creates and where events are
routed), so preparing a function version is skipped. Nothing else is changed.
"""

from localstack.services.lambda_.invocation.docker_runtime_executor import DockerRuntimeExecutor

DockerRuntimeExecutor.prepare_version = classmethod(lambda cls, function_version: None)

from localstack.runtime.main import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    main()
