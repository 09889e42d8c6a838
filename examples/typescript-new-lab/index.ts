// A Falco lab on a new EKS cluster: the cluster with its audit log, Falco, and the audit forwarder, as one unit.
import * as falcoEks from "@falcolab/falco-eks";

const lab = new falcoEks.FalcoEksLab("lab", {
    cluster: {
        clusterName: "falco-lab",
        nodeCount: 2,
        // Narrow the public API endpoint to your own address where you can.
        apiPublicAccessCidrs: ["203.0.113.0/24"],
        clusterViewerArns: ["arn:aws:iam::123456789012:role/Auditors"],
    },
    falco: {
        sidekickUi: true,
    },
    forwarderBuild: "source", // no Docker needed where `pulumi up` runs
});

export const clusterName = lab.clusterName;
export const kubeconfig = lab.kubeconfig;
export const falcoUiCommand = lab.falcoUiCommand;
export const falcoUiPassword = lab.falcoUiPassword;
export const forwarderLogsCommand = lab.forwarderLogsCommand;
