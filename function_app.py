"""The Functions app: triggers only. Each parses its input, calls one use case, renders.

Imports of the deployer are lazy and the services are built on first use, so importing this
file touches no network and no setting (a missing setting fails the invocation, not the host).
"""

import json
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
    logger.info("bundle %r: request %s is %s", client.blob_name, record.request_id, record.status)


@app.function_name("deploy_request")
@app.queue_trigger(arg_name="message", queue_name="%DEPLOYER_REQUEST_QUEUE%",
                   connection="AzureWebJobsStorage")
def deploy_request(message: func.QueueMessage) -> None:
    """Run the pipeline for one request. Transient failures raise, so the host retries."""
    from deployer.bootstrap import services_from_environment
    from deployer.rotation.dispatch import handle_message

    record = handle_message(services_from_environment(), message.get_body(),
                            message_id=message.id or "", attempt=message.dequeue_count or 1)
    if record is not None:
        logger.info("request %s for %s: %s", record.request_id, record.module, record.status)


@app.function_name("acr_webhook")
@app.route(route="acr-webhook", methods=["POST", "OPTIONS"])
def acr_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """ACR push webhooks (or Event Grid ImagePushed events): queue a redeploy, answer at once."""
    from deployer.bootstrap import services_from_environment
    from deployer.pipeline.webhook import receive_webhook

    reply = receive_webhook(services_from_environment(), req.method, dict(req.headers),
                            req.get_body())
    return func.HttpResponse(json.dumps(reply.body), status_code=reply.status,
                             headers=reply.headers, mimetype="application/json")


@app.function_name("status")
@app.route(route="status", methods=["GET"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    """What the deployer knows per module (the CLI's `status --json`)."""
    from deployer import codec
    from deployer.bootstrap import services_from_environment
    from deployer.errors import DeployerError
    from deployer.pipeline.status import module_statuses

    try:
        statuses = module_statuses(services_from_environment(), req.params.get("module"))
    except DeployerError as exc:
        return func.HttpResponse(json.dumps(exc.to_dict()), status_code=502,
                                 mimetype="application/json")
    return func.HttpResponse(json.dumps({"modules": codec.to_data(statuses)}),
                             mimetype="application/json")


@app.function_name("dashboard")
@app.route(route="dashboard", methods=["GET"])
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    """One page of what the deployer knows (``?format=json``: the document it is drawn from)."""
    from deployer.bootstrap import services_from_environment
    from deployer.dashboard import dashboard_data, render
    from deployer.errors import DeployerError

    try:
        data = dashboard_data(services_from_environment(), req.params.get("module"))
    except DeployerError as exc:
        return func.HttpResponse(json.dumps(exc.to_dict()), status_code=502,
                                 mimetype="application/json")
    if req.params.get("format") == "json":
        return func.HttpResponse(json.dumps(data), mimetype="application/json")
    return func.HttpResponse(render(data), mimetype="text/html")


@app.function_name("per_run_dispatch")
@app.timer_trigger(arg_name="timer", schedule="%DEPLOYER_DISPATCH_SCHEDULE%")
def per_run_dispatch(timer: func.TimerRequest) -> None:
    """Modules with ``isolation: run``: a container for each due flow run, the ended ones
    removed (two Prefect calls for all of them when nothing is due), in each environment."""
    from deployer.bootstrap import services_from_environment
    from deployer.pipeline.per_run import tick
    from deployer.services import each_environment

    for services in each_environment(services_from_environment()):
        tick(services)


@app.function_name("nightly_cleanup")
@app.timer_trigger(arg_name="timer", schedule="%CLEANUP_SCHEDULE%")
def nightly_cleanup(timer: func.TimerRequest) -> None:
    """Delete what is no longer live: agents, images, bundles, records, queues (paced, reported);
    then redeploy modules whose Key Vault secrets were rotated."""
    from deployer.bootstrap import services_from_environment
    from deployer.errors import LockBusy
    from deployer.pipeline.cleanup import run_cleanup, timer_budget
    from deployer.pipeline.secret_rotation import redeploy_rotated
    from deployer.services import each_environment

    for services in each_environment(services_from_environment()):  # each one's, in turn
        try:
            report = run_cleanup(services, budget_seconds=timer_budget(services))
        except LockBusy as exc:  # another cleanup runs: retrying would only collide again
            logger.warning("cleanup skipped: %s", exc.message)
            continue
        logger.info("cleanup %s of %s: deleted %d, kept %d, deferred %d, failed %d",
                    report.report_id, services.settings.environment_name, report.count("deleted"),
                    report.count("kept"), report.count("deferred"), report.count("failed"))
        for rotated in redeploy_rotated(services):  # Key Vault secrets moved on
            logger.info("secrets of %s rotated (%s): request %s %s", rotated.module,
                        ",".join(rotated.keys), rotated.request_id or "-", rotated.error)
