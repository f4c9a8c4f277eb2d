#!/bin/sh
# After `azd deploy`: what needs the published app. The blob trigger's Event Grid subscription
# needs the app's blobs_extension system key, which the host creates only once it has indexed the
# published code: wait for it (progress every 10 s, give up after 10 minutes), then subscribe.
# The ACR webhook gets no scope: ACR reads 'repo/*' as repo/*:latest only, so pushes of real tags
# would never fire; the deployer itself ignores repositories that are no module's.
set -eu

SUB=$(azd env get-value AZURE_SUBSCRIPTION_ID)
RG=$(azd env get-value AZURE_RESOURCE_GROUP)
APP=$(azd env get-value AZURE_FUNCTION_APP_NAME)
STORAGE=$(azd env get-value AZURE_STORAGE_ACCOUNT)
ACR=$(azd env get-value DEPLOYER_REGISTRY)
TOKEN=$(azd env get-value DEPLOYER_WEBHOOK_TOKEN)
ENV_NAME=$(azd env get-value AZURE_ENV_NAME)
# the host name App Service gave the site (the template's output of defaultHostName)
APP_URL=$(azd env get-value AZURE_FUNCTION_APP_URL)
TOPIC="evgt-$ENV_NAME-storage"
WAIT_SECONDS=${DEPLOYER_KEY_WAIT_SECONDS:-600}

waited=0
KEY=""
while [ -z "$KEY" ]; do
  KEY=$(az functionapp keys list --subscription "$SUB" -n "$APP" -g "$RG" --query systemKeys.blobs_extension -o tsv 2>/dev/null || true)
  if [ -n "$KEY" ]; then break; fi
  if [ "$waited" -ge "$WAIT_SECONDS" ]; then
    echo "the app's blobs_extension key did not appear within ${WAIT_SECONDS}s: is the code published" >&2
    echo "(azd deploy) and the host running? see the app's log stream; then run: azd hooks run postdeploy" >&2
    exit 1
  fi
  echo "waiting for the function host to create its blobs_extension key (${waited}s)"
  sleep 10
  waited=$((waited + 10))
done

ENDPOINT="$APP_URL/runtime/webhooks/blobs?functionName=Host.Functions.bundle_uploaded&code=$KEY"
az eventgrid system-topic event-subscription create --subscription "$SUB" -n bundles-to-app -g "$RG" \
  --system-topic-name "$TOPIC" --endpoint "$ENDPOINT" --endpoint-type webhook \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with /blobServices/default/containers/bundles/ \
  --max-delivery-attempts 30 --event-ttl 1440 -o none
echo "Event Grid: BlobCreated in container bundles -> $APP (bundle_uploaded)"

FUNC_KEY=$(az functionapp function keys list --subscription "$SUB" -n "$APP" -g "$RG" --function-name acr_webhook --query default -o tsv)
if az acr webhook show --subscription "$SUB" -r "$ACR" -n deployer -o none 2>/dev/null; then
  az acr webhook update --subscription "$SUB" -r "$ACR" -n deployer --actions push \
    --uri "$APP_URL/api/acr-webhook?code=$FUNC_KEY" \
    --headers "X-Deployer-Webhook-Token=$TOKEN" -o none
else
  az acr webhook create --subscription "$SUB" -r "$ACR" -n deployer --actions push \
    --uri "$APP_URL/api/acr-webhook?code=$FUNC_KEY" \
    --headers "X-Deployer-Webhook-Token=$TOKEN" -o none
fi
echo "ACR webhook: every push to $ACR -> $APP (acr-webhook)"
# the CLI's settings, from the azd environment: the same names the app reads
SETTINGS=".azure/$ENV_NAME/deployer.settings.json"
azd env get-values | python3 -c '
import json, shlex, sys
keep = ("DEPLOYER_", "PREFECT_", "AzureWebJobsStorage__", "AZURE_SUBSCRIPTION_ID")
values = {}
for line in sys.stdin:
    key, _, raw = line.rstrip("\n").partition("=")
    if key.startswith(keep):
        values[key] = " ".join(shlex.split(raw)) if raw else ""
json.dump({"IsEncrypted": False, "Values": values}, sys.stdout, indent=2)
' > "$SETTINGS"
chmod 600 "$SETTINGS"
echo "the CLI: deployer --settings $SETTINGS status"
