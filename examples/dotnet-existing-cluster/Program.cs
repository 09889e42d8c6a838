// Falco and the audit forwarder on an EKS cluster that exists already, deployed as a platform role.
using System.Collections.Generic;
using Pulumi;
using Aws = Pulumi.Aws;
using FalcoEks = Falcolab.FalcoEks;

return await Deployment.RunAsync(() =>
{
    const string deployer = "arn:aws:iam::123456789012:role/platform/Deployer";
    var prod = new Aws.Provider("prod", new Aws.ProviderArgs
    {
        Region = "eu-central-1",
        AssumeRoles = new[] { new Aws.Inputs.ProviderAssumeRoleArgs { RoleArn = deployer } },
    });

    var detection = new FalcoEks.FalcoDetection("falco", new FalcoEks.FalcoDetectionArgs
    {
        ClusterName = "prod-eu",
        KubeconfigRoleArn = deployer,
        ForwarderBuild = FalcoEks.ForwarderBuild.Source,
        Falco = new FalcoEks.Inputs.FalcoSettingsArgs
        {
            AuditEventsPerSecond = 4000,
            ImageRegistry = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/docker-hub",
        },
    }, new ComponentResourceOptions { Providers = { prod } });

    return new Dictionary<string, object?>
    {
        ["forwarderLogsCommand"] = detection.ForwarderLogsCommand,
        ["falcoUiCommand"] = detection.FalcoUiCommand,
    };
});
