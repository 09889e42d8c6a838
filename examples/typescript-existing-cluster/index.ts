// Falco and the audit forwarder on an EKS cluster that exists already, deployed as a platform role.
import * as aws from "@pulumi/aws";
import * as falcoEks from "@falcolab/falco-eks";

const deployer = "arn:aws:iam::123456789012:role/platform/Deployer";
const prod = new aws.Provider("prod", { region: "eu-central-1", assumeRoles: [{ roleArn: deployer }] });

const detection = new falcoEks.FalcoDetection("falco", {
    clusterName: "prod-eu",
    kubeconfigRoleArn: deployer, // the component's kubeconfig acts as the provider's role
    forwarderBuild: "source", // no Docker needed where `pulumi up` runs
    auditSource: "kinesis", // one of the log group's two subscription filters
    kinesis: { shardCount: 2 }, // provisioned; leave out for on-demand
    falco: {
        auditEventsPerSecond: 4000, // four audit replicas of one CPU each
        adminIdentities: ["arn:aws:iam::123456789012:role/PlatformAdmin"],
        imageRegistry: "123456789012.dkr.ecr.eu-central-1.amazonaws.com/docker-hub",
        auditValues: { podPriorityClassName: "system-cluster-critical" },
        syscallValues: { nodeSelector: { "kubernetes.io/os": "linux" } },
    },
}, { providers: { aws: prod } });

export const falcoUiCommand = detection.falcoUiCommand;
export const forwarderLogsCommand = detection.forwarderLogsCommand;
export const auditStreamArn = detection.auditStreamArn;
