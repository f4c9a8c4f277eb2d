// Prefect Collective deployer on Azure: everything `azd up` provisions. Subscription scope: it
// makes the app's resource group and the agents' resource group, and the two custom roles that
// give the app exactly the ACR Tasks and ACI actions it uses (no Contributor anywhere).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name: names and tags every resource')
param environmentName string

@minLength(1)
@description('Azure region of every resource')
param location string

@description('Prefect API the deployer and its agents talk to (Prefect Cloud workspace URL)')
param prefectApiUrl string

@secure()
@description('Prefect Cloud API key: stored in Key Vault, read by the app through a Key Vault reference')
param prefectApiKey string

@secure()
@minLength(32)
@description('secret key of the keyed hash over .env values (the preprovision hook makes one)')
param configDigestKey string

@secure()
@minLength(24)
@description('shared secret ACR webhooks carry in X-Deployer-Webhook-Token (the preprovision hook makes one)')
param webhookToken string

@description('Docker Hub user for the registry cache rule of prefecthq/prefect (empty: anonymous, once per tag)')
param dockerHubUsername string = ''

@secure()
@description('Docker Hub access token for that user')
param dockerHubToken string = ''

@description('object id of the person running azd (azd sets it): may read the state and bundles')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
@description('what principalId is: a person (User), or a service principal when azd runs in CI')
param principalType string = 'User'

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))
// custom role names are unique per tenant: the same environment name in two subscriptions of one
// tenant must not collide
var roleSuffix = '${environmentName}, ${substring(uniqueString(subscription().id), 0, 6)}'


resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// ACI container groups live here; the app may manage groups in this group and nowhere else
resource agentsRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}-agents'
  location: location
  tags: tags
}

// schedule ACR Tasks runs and read them: the registry's built-in roles have no such set (AcrPush
// cannot schedule a run; Contributor could delete the registry)
resource buildRunner 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'acr-build-runner')
  properties: {
    roleName: 'ACR build runner (${roleSuffix})'
    description: 'Schedule ACR Tasks quick runs and read their runs and logs.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.ContainerRegistry/registries/read'
          'Microsoft.ContainerRegistry/registries/scheduleRun/action'
          'Microsoft.ContainerRegistry/registries/listBuildSourceUploadUrl/action'
          'Microsoft.ContainerRegistry/registries/runs/read'
          'Microsoft.ContainerRegistry/registries/runs/listLogSasUrl/action'
        ]
        notActions: []
      }
    ]
    assignableScopes: [rg.id]
  }
}

// create, read, delete container groups and read their logs: what aci_runtime.py calls
resource agentManager 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'aci-agent-manager')
  properties: {
    roleName: 'ACI agent manager (${roleSuffix})'
    description: 'Manage the deployer agents container groups in one resource group.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Resources/subscriptions/resourceGroups/read'
          'Microsoft.ContainerInstance/containerGroups/read'
          'Microsoft.ContainerInstance/containerGroups/write'
          'Microsoft.ContainerInstance/containerGroups/delete'
          'Microsoft.ContainerInstance/containerGroups/containers/logs/read'
        ]
        notActions: []
      }
    ]
    assignableScopes: [agentsRg.id]
  }
}

module resources 'resources.bicep' = {
  name: 'resources'
  scope: rg
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    token: token
    agentsResourceGroup: agentsRg.name
    prefectApiUrl: prefectApiUrl
    prefectApiKey: prefectApiKey
    configDigestKey: configDigestKey
    webhookToken: webhookToken
    dockerHubUsername: dockerHubUsername
    dockerHubToken: dockerHubToken
    principalId: principalId
    principalType: principalType
    buildRunnerRoleId: buildRunner.id
  }
}

module agentRoles 'modules/agents-rg-roles.bicep' = {
  name: 'agents-rg-roles'
  scope: agentsRg
  params: {
    appPrincipalId: resources.outputs.appPrincipalId
    agentManagerRoleId: agentManager.id
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output DEPLOYER_RESOURCE_GROUP string = agentsRg.name
output AZURE_FUNCTION_APP_NAME string = resources.outputs.appName
output AZURE_FUNCTION_APP_URL string = resources.outputs.appUrl
output AZURE_FUNCTION_APP_CLIENT_ID string = resources.outputs.appClientId
// the custom roles' names: postdown deletes them (they outlive the resource groups)
output AZURE_BUILD_RUNNER_ROLE string = buildRunner.properties.roleName
output AZURE_AGENT_MANAGER_ROLE string = agentManager.properties.roleName
output AZURE_STORAGE_ACCOUNT string = resources.outputs.storageAccount
output DEPLOYER_REGISTRY string = resources.outputs.registryName
output DEPLOYER_AGENT_IDENTITY string = resources.outputs.agentIdentityId
output DEPLOYER_AGENT_IDENTITY_CLIENT_ID string = resources.outputs.agentIdentityClientId
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
// what the CLI needs besides the azd environment's own values (postdeploy writes them to
// .azure/<env>/deployer.settings.json for `deployer --settings`)
output DEPLOYER_BACKEND string = 'azure'
output DEPLOYER_LOCATION string = location
output DEPLOYER_REGISTRY_RESOURCE_GROUP string = rg.name
output AzureWebJobsStorage__accountName string = resources.outputs.storageAccount
output DEPLOYER_BASE_IMAGE_REGISTRY string = resources.outputs.registryLoginServer
