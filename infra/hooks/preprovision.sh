#!/bin/sh
# Before `azd provision`: the settings only this environment may hold, made once and kept in the
# azd environment (.azure/<env>/.env, never committed), and the resource provider the app cannot
# register itself (its roles are resource-group scoped).
set -eu

need() { azd env get-value "$1" 2>/dev/null || true; }

# every az call names the azd environment's subscription: az's own default may be another one
SUB=$(need AZURE_SUBSCRIPTION_ID)
if [ -z "$SUB" ]; then
  echo "AZURE_SUBSCRIPTION_ID is not set in the azd environment: azd env set AZURE_SUBSCRIPTION_ID <id>" >&2
  exit 1
fi

# who runs azd: a person (User) or, in CI and live tests, a service principal; the operator's
# role assignments need the right principalType (ARM refuses a mismatch: UnmatchedPrincipalType)
if [ -z "$(need AZURE_PRINCIPAL_TYPE)" ]; then
  case "$(az account show --subscription "$SUB" --query user.type -o tsv 2>/dev/null || echo user)" in
    servicePrincipal) azd env set AZURE_PRINCIPAL_TYPE ServicePrincipal ;;
    *) azd env set AZURE_PRINCIPAL_TYPE User ;;
  esac
fi

if [ -z "$(need PREFECT_API_URL)" ]; then
  echo "PREFECT_API_URL is not set: azd env set PREFECT_API_URL https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>" >&2
  exit 1
fi
if [ -z "$(need PREFECT_API_KEY)" ]; then
  echo "PREFECT_API_KEY is not set: azd env set PREFECT_API_KEY <key> (it goes to Key Vault)" >&2
  exit 1
fi
# a random key, once: changing it later makes every module's config digest change (one redeploy each)
if [ -z "$(need DEPLOYER_CONFIG_DIGEST_KEY)" ]; then
  azd env set DEPLOYER_CONFIG_DIGEST_KEY "$(openssl rand -hex 32)"
fi
if [ -z "$(need DEPLOYER_WEBHOOK_TOKEN)" ]; then
  azd env set DEPLOYER_WEBHOOK_TOKEN "$(openssl rand -hex 24)"
fi

# ARM registers a provider for the resources a template deploys, but agents are container
# groups the app creates later: register Microsoft.ContainerInstance now (subscription rights)
for namespace in Microsoft.ContainerInstance Microsoft.ContainerRegistry Microsoft.EventGrid \
                 Microsoft.Web Microsoft.KeyVault Microsoft.Insights Microsoft.OperationalInsights; do
  state=$(az provider show --subscription "$SUB" --namespace "$namespace" --query registrationState -o tsv 2>/dev/null || echo "")
  if [ "$state" != "Registered" ]; then
    echo "registering resource provider $namespace (once per subscription; can take a few minutes)"
    az provider register --subscription "$SUB" --namespace "$namespace" --wait
  fi
done
