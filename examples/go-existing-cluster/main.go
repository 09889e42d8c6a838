// Falco and the audit forwarder on an EKS cluster that exists already, deployed as a platform role.
package main

import (
	"github.com/pulumi/pulumi-aws/sdk/v7/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/falcolab/pulumi-falco-eks/sdk/go/falcoeks"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		deployer := "arn:aws:iam::123456789012:role/platform/Deployer"
		prod, err := aws.NewProvider(ctx, "prod", &aws.ProviderArgs{
			Region: pulumi.String("eu-central-1"),
			AssumeRoles: aws.ProviderAssumeRoleArray{
				&aws.ProviderAssumeRoleArgs{RoleArn: pulumi.String(deployer)},
			},
		})
		if err != nil {
			return err
		}
		detection, err := falcoeks.NewFalcoDetection(ctx, "falco", &falcoeks.FalcoDetectionArgs{
			ClusterName:       "prod-eu",
			KubeconfigRoleArn: pulumi.StringRef(deployer),
			// An image your CI built from the release's forwarder/Dockerfile and pushed.
			ForwarderImage: pulumi.String("123456789012.dkr.ecr.eu-central-1.amazonaws.com/falco-forwarder:0.4.0"),
			Falco: &falcoeks.FalcoSettingsArgs{
				AuditEventsPerSecond: pulumi.IntRef(4000),
				AdminIdentities:      []string{"arn:aws:iam::123456789012:role/PlatformAdmin"},
			},
		}, pulumi.Providers(prod))
		if err != nil {
			return err
		}
		ctx.Export("forwarderLogsCommand", detection.ForwarderLogsCommand)
		ctx.Export("falcoUiCommand", detection.FalcoUiCommand)
		return nil
	})
}
