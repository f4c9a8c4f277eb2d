#!/bin/sh
# After `azd down`: the resource groups are gone, and with them every resource and role
# assignment; the two custom roles are defined at subscription scope and outlive them, so delete
# them here (azd down then removes everything `azd up` made).
set -eu

ENV_NAME=$(azd env get-value AZURE_ENV_NAME)
for role in "ACR build runner ($ENV_NAME)" "ACI agent manager ($ENV_NAME)"; do
  if [ -n "$(az role definition list --custom-role-only true --name "$role" --query '[].name' -o tsv)" ]; then
    az role definition delete --name "$role" --custom-role-only true
    echo "deleted custom role: $role"
  fi
done
