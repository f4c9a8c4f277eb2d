// A registry credential set for Docker Hub: its user and access token in Key Vault, read by the
// credential set's own identity (Key Vault Secrets User on the vault: the reason for that role).
param registryName string
param vaultName string
param username string
@secure()
param token string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource userSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'docker-hub-username'
  properties: { value: username, contentType: 'text/plain' }
}

resource tokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'docker-hub-token'
  properties: { value: token, contentType: 'text/plain' }
}

resource credentials 'Microsoft.ContainerRegistry/registries/credentialSets@2023-07-01' = {
  parent: registry
  name: 'docker-hub'
  identity: { type: 'SystemAssigned' }
  properties: {
    loginServer: 'docker.io'
    authCredentials: [
      {
        name: 'Credential1'
        usernameSecretIdentifier: userSecret.properties.secretUri
        passwordSecretIdentifier: tokenSecret.properties.secretUri
      }
    ]
  }
}

resource readsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, credentials.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: credentials.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

output credentialSetId string = credentials.id
