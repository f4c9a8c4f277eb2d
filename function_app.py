"""The Functions app: triggers only. Each parses its input, calls one use case, renders.

Imports of the deployer are lazy and the services are built on first use, so importing this
file touches no network and no setting (a missing setting fails the invocation, not the host).
"""

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logger = logging.getLogger("deployer.function_app")


@app.function_name("bundle_uploaded")
@app.blob_trigger(arg_name="client", path="%DEPLOYER_BUNDLES_CONTAINER%/{name}",
                  connection="AzureWebJobsStorage", source=func.BlobSource.EVENT_GRID)
def bundle_uploaded(client: blob.BlobClient) -> None:
    """A bundle landed in the bundles container: validate it, queue a deploy request."""
    from deployer.bootstrap import services_from_environment
    from deployer.pipeline.intake import accept_bundle

    record = accept_bundle(services_from_environment(), client.blob_name)
    logger.info("bundle %s: request %s is %s", client.blob_name, record.request_id, record.status)


@app.function_name("deploy_request")
@app.queue_trigger(arg_name="message", queue_name="%DEPLOYER_REQUEST_QUEUE%",
                   connection="AzureWebJobsStorage")
def deploy_request(message: func.QueueMessage) -> None:
    """Run the pipeline for one request. Transient failures raise, so the host retries."""
    from deployer.bootstrap import services_from_environment
    from deployer.pipeline.dispatch import handle_message

    record = handle_message(services_from_environment(), message.get_body(),
                            message_id=message.id or "", attempt=message.dequeue_count or 1)
    if record is not None:
        logger.info("request %s for %s: %s", record.request_id, record.module, record.status)
