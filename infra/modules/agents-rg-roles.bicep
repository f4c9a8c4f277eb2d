// The app's one role in the agents' resource group: manage container groups (custom role,
// defined in main.bicep), nothing else.
param appPrincipalId string
param agentManagerRoleId string

resource manageAgents 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, agentManagerRoleId)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: agentManagerRoleId
  }
}
