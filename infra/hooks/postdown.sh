#!/bin/sh
# After `azd down`: the resource groups are gone, and with them every resource and role
# assignment; the two custom roles are defined at subscription scope and outlive them, so delete
# them here (azd down then removes everything `azd up` made).
set -eu

SUB=$(azd env get-value AZURE_SUBSCRIPTION_ID)
# their names, as provisioning made them (unique per tenant: the environment and the subscription)
for key in AZURE_BUILD_RUNNER_ROLE AZURE_AGENT_MANAGER_ROLE; do
  role=$(azd env get-value "$key" 2>/dev/null || true)
  [ -n "$role" ] || continue
  if [ -n "$(az role definition list --subscription "$SUB" --custom-role-only true --name "$role" --query '[].name' -o tsv)" ]; then
    az role definition delete --subscription "$SUB" --name "$role" --custom-role-only true
    echo "deleted custom role: $role"
  fi
done
