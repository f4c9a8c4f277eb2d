// The deployer's resources in the app's resource group: storage (identity only), Key Vault, the
// registry (with a cache rule for Prefect's base image), monitoring, the agents' identity and the
// Flex Consumption function app with every setting. Each role assignment says why it is needed.
param environmentName string
param location string
param tags object
param token string
param agentsResourceGroup string
param prefectApiUrl string
@secure()
param prefectApiKey string
@secure()
param configDigestKey string
@secure()
param webhookToken string
param dockerHubUsername string
@secure()
param dockerHubToken string
param principalId string
param principalType string
param buildRunnerRoleId string

// built-in role ids (Microsoft's published definitions: tests/data/azure-specs/rbac/builtin-roles.json)
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  acrDelete: 'c2f4ef07-c644-48eb-af81-4b1b4947fb11'
  managedIdentityOperator: 'f1a07417-d97a-45cb-824c-7a7467783830'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}
var containers = ['bundles', 'deployer-state', 'deployer-code', 'app-package']
var appName = 'func-${environmentName}-${token}'
var useDockerHubCredentials = !empty(dockerHubUsername)

// -- storage: shared keys off; the app, the host and the agents use their identities ------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_RAGRS' } // geo-redundant: state and history outlive a region
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in containers: {
  parent: blobService
  name: name
  properties: { publicAccess: 'None' }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'deploy-requests'
}

// the blob trigger's events (BlobCreated in the bundles container); the subscription itself is
// made after the code is published, when the app's blobs_extension key exists (postdeploy hook)
resource storageEvents 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${environmentName}-storage'
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// -- Key Vault: the app's secrets, read through Key Vault references ----------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${token}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // no purge protection: `azd down --purge` must free the vault's name for the next `azd up`
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource prefectKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'prefect-api-key'
  properties: { value: prefectApiKey, contentType: 'text/plain' }
}

resource digestKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'config-digest-key'
  properties: { value: configDigestKey, contentType: 'text/plain' }
}

resource webhookTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'webhook-token'
  properties: { value: webhookToken, contentType: 'text/plain' }
}

// -- the registry: images of the modules, and Prefect's base image through a cache rule ---------

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'cr${token}'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

// authenticated pulls from Docker Hub for the cache rule, when a Docker Hub user is given
module dockerHub 'modules/docker-hub-credentials.bicep' = if (useDockerHubCredentials) {
  name: 'docker-hub-credentials'
  params: {
    registryName: registry.name
    vaultName: vault.name
    username: dockerHubUsername
    token: dockerHubToken
  }
}

// builds pull FROM <registry>/prefecthq/prefect (flows/finance/Dockerfile's DEPLOYER_REGISTRY
// argument): the registry fetches a tag from Docker Hub once and serves it from then on, so ACR
// Tasks never pull Docker Hub anonymously from shared addresses
resource prefectCache 'Microsoft.ContainerRegistry/registries/cacheRules@2023-07-01' = {
  parent: registry
  name: 'prefecthq-prefect'
  properties: {
    sourceRepository: 'docker.io/prefecthq/prefect'
    targetRepository: 'prefecthq/prefect'
    credentialSetResourceId: useDockerHubCredentials ? dockerHub.outputs.credentialSetId : null
  }
}

// -- monitoring ---------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${environmentName}-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${environmentName}-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
  }
}

// -- the agents' identity: pulls images, reads the code store, nothing else ----------------------

resource agentIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${environmentName}-agents'
  location: location
  tags: tags
}

// agents pull their image from the registry with it (no registry password anywhere)
resource agentPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, agentIdentity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: agentIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

// flow runs fetch code-only revisions from the code container, and may read nothing else
resource agentReadsCode 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, 'deployer-code', agentIdentity.id, roles.storageBlobDataReader)
  scope: blobContainers[2]
  properties: {
    principalId: agentIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
  }
}

// -- the app's identity: user-assigned, so that its roles exist before the site does ---------------

// A system-assigned identity only exists once the site does, so its Key Vault role would come
// after the site and its Key Vault references: App Service would keep the literal
// @Microsoft.KeyVault(...) text in the settings until it refetches (up to a day). A user-assigned
// identity gets its roles first; the site is created after them (dependsOn) and resolves its
// references at once. (Microsoft's Key Vault references page recommends this.)
resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${environmentName}-app'
  location: location
  tags: tags
}

// -- the function app (Flex Consumption, Python 3.11) ------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${environmentName}-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'app' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${appIdentity.id}': {} } }
  // its roles first: the Key Vault references and identity storage work from the first start
  dependsOn: [appSecrets, appBlobs, appQueues]
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: appIdentity.id
    // Flex Consumption: ARM refuses a site that carries ftpsState, use32BitWorkerProcess,
    // netFrameworkVersion, preWarmedInstanceCount or functionsRuntimeScaleMonitoringEnabled,
    // even null (error 51021); Microsoft's Flex samples set minTlsVersion only
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // the host's own storage and the deployer's, identity only (shared keys are off)
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: appIdentity.properties.clientId }
        // DefaultAzureCredential (ARM, ACR, Key Vault) uses this user-assigned identity
        { name: 'AZURE_CLIENT_ID', value: appIdentity.properties.clientId }
        { name: 'AzureWebJobsFeatureFlags', value: 'EnableWorkerIndexing' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'DEPLOYER_BACKEND', value: 'azure' }
        // one environment unless DEPLOYER_ENVIRONMENTS names more (docs/environments.md)
        { name: 'DEPLOYER_ENVIRONMENTS', value: '' }
        { name: 'DEPLOYER_ENVIRONMENT', value: '' }
        { name: 'DEPLOYER_APPROVAL', value: 'none' }
        { name: 'DEPLOYER_AUTO_PROMOTE_FROM', value: '' }
        { name: 'PREFECT_API_URL', value: prefectApiUrl }
        { name: 'PREFECT_API_KEY', value: '@Microsoft.KeyVault(SecretUri=${prefectKeySecret.properties.secretUri})' }
        { name: 'DEPLOYER_CONFIG_DIGEST_KEY', value: '@Microsoft.KeyVault(SecretUri=${digestKeySecret.properties.secretUri})' }
        { name: 'DEPLOYER_WEBHOOK_TOKEN', value: '@Microsoft.KeyVault(SecretUri=${webhookTokenSecret.properties.secretUri})' }
        { name: 'DEPLOYER_BUNDLES_CONTAINER', value: 'bundles' }
        { name: 'DEPLOYER_STATE_CONTAINER', value: 'deployer-state' }
        { name: 'DEPLOYER_REQUEST_QUEUE', value: 'deploy-requests' }
        { name: 'DEPLOYER_CODE_CONTAINER', value: 'deployer-code' }
        { name: 'DEPLOYER_MAX_BUNDLE_MB', value: '200' }
        { name: 'DEPLOYER_MAX_BUNDLE_ENTRIES', value: '10000' }
        { name: 'DEPLOYER_MAX_COMPRESSION_RATIO', value: '100' }
        { name: 'DEPLOYER_LOCK_LEASE_SECONDS', value: '30' }
        { name: 'DEPLOYER_LOCK_WAIT_SECONDS', value: '10' }
        { name: 'DEPLOYER_STEP_SLICE_SECONDS', value: '20' }
        { name: 'DEPLOYER_AGENT_PREFIX', value: 'agent' }
        { name: 'DEPLOYER_HEALTH_TIMEOUT_SECONDS', value: '600' }
        { name: 'DEPLOYER_DRAIN_TIMEOUT_SECONDS', value: '86400' }
        { name: 'DEPLOYER_BAKE_SECONDS', value: '600' }
        { name: 'DEPLOYER_BAKE_RUNS', value: '3' }
        { name: 'DEPLOYER_BAKE_FAILURE_RATIO', value: '0.5' }
        { name: 'DEPLOYER_WORKER_POLL_SECONDS', value: '30' }
        { name: 'DEPLOYER_WORKER_HEARTBEAT_SECONDS', value: '60' }
        { name: 'DEPLOYER_NOTIFY_URLS', value: '' }
        { name: 'DEPLOYER_NOTIFY_TIMEOUT_SECONDS', value: '5' }
        // empty: the deployer links to https://$WEBSITE_HOSTNAME, the host name App Service gives
        // the site (not always <app>.azurewebsites.net)
        { name: 'DEPLOYER_PUBLIC_URL', value: '' }
        // the timers' NCRONTABs: without them the timer triggers cannot be indexed
        { name: 'DEPLOYER_DISPATCH_SCHEDULE', value: '*/10 * * * * *' }
        { name: 'CLEANUP_SCHEDULE', value: '0 0 2 * * *' }
        { name: 'DEPLOYER_KEEP_REVISIONS', value: '5' }
        { name: 'DEPLOYER_ROLLBACK_WINDOW_DAYS', value: '14' }
        { name: 'DEPLOYER_RETENTION_DAYS', value: '30' }
        { name: 'DEPLOYER_KEEP_RECORDS', value: '20' }
        { name: 'DEPLOYER_ORPHAN_GRACE_HOURS', value: '24' }
        { name: 'DEPLOYER_ACI_DELETE_QUOTA', value: '100/300,300/3600' }
        { name: 'DEPLOYER_CLEANUP_CONCURRENCY', value: '4' }
        { name: 'DEPLOYER_CLEANUP_BUDGET_SECONDS', value: '600' }
        { name: 'AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'DEPLOYER_RESOURCE_GROUP', value: agentsResourceGroup }
        { name: 'DEPLOYER_LOCATION', value: location }
        { name: 'DEPLOYER_REGISTRY', value: registry.name }
        { name: 'DEPLOYER_REGISTRY_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'DEPLOYER_REGISTRY_LOGIN_SERVER', value: registry.properties.loginServer }
        { name: 'DEPLOYER_IMAGE_REPOSITORY', value: 'prefect-flows' }
        { name: 'DEPLOYER_AGENT_IDENTITY', value: agentIdentity.id }
        { name: 'DEPLOYER_AGENT_IDENTITY_CLIENT_ID', value: agentIdentity.properties.clientId }
        { name: 'DEPLOYER_AGENT_CPU', value: '1' }
        { name: 'DEPLOYER_AGENT_MEMORY_GB', value: '1.5' }
        { name: 'DEPLOYER_BUILD_TIMEOUT_SECONDS', value: '3600' }
        { name: 'DEPLOYER_FAST_DEPLOYS', value: 'on' }
        { name: 'DEPLOYER_BASE_IMAGE_REGISTRY', value: registry.properties.loginServer }
        { name: 'DEPLOYER_BUILD_CACHE', value: 'on' }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}app-package'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: appIdentity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

// the host and the deployer keep blobs, leases and containers (state, bundles, code, the app's
// package): Blob Data Owner on the account, as identity-based host storage requires
resource appBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// the request queue and the blob trigger's poison queue
resource appQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// Key Vault references in the app settings, and in modules' .env files
resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appIdentity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// run ACR Tasks builds (the custom role) ...
resource appBuilds 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, appIdentity.id, buildRunnerRoleId)
  scope: registry
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: buildRunnerRoleId
  }
}

// ... read tags and manifests (webhook pushes, cleanup's inventory): AcrPull ...
resource appReadsImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, appIdentity.id, roles.acrPull)
  scope: registry
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

// ... and delete tags and manifests (the nightly cleanup): only AcrDelete holds
// Microsoft.ContainerRegistry/registries/artifacts/delete (AcrPush cannot delete). The app
// pushes nothing itself: ACR Tasks pushes what it builds.
resource appDeletesImages 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, appIdentity.id, roles.acrDelete)
  scope: registry
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrDelete)
  }
}

// hand the agents' identity to the container groups it creates (assign action only)
resource appAssignsAgentIdentity 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(agentIdentity.id, appIdentity.id, roles.managedIdentityOperator)
  scope: agentIdentity
  properties: {
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.managedIdentityOperator)
  }
}

// the person running azd reads state and uploads bundles with `deployer` (az login)
resource operatorBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource operatorQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

output appName string = app.name
output appUrl string = 'https://${app.properties.defaultHostName}'
output appPrincipalId string = appIdentity.properties.principalId
output appClientId string = appIdentity.properties.clientId
output storageAccount string = storage.name
output registryName string = registry.name
output registryLoginServer string = registry.properties.loginServer
output agentIdentityId string = agentIdentity.id
output agentIdentityClientId string = agentIdentity.properties.clientId
output keyVaultName string = vault.name
