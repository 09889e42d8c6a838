"""LabVpc: the dedicated VPC an AuditedCluster gets when the caller brings none.

Two availability zones, a public and a private subnet in each, one NAT gateway (in the first public
subnet) for the nodes' egress: falcoctl downloads rules and plugins when Falco starts, and the
nodes pull images. One NAT gateway instead of one per zone keeps the lab's hourly cost down; the
price is that the private subnets lose egress if that one zone fails, which a lab can accept.
"""

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from ..args import from_inputs, schema_args
from ..errors import ConfigError

COMPONENT_TYPE = "falco-eks:index:LabVpc"

# EKS needs subnets in at least two availability zones; the lab uses exactly two.
ZONE_COUNT = 2

# Zone IDs where EKS refuses cluster subnets (EKS user guide, "View Amazon EKS networking
# requirements for VPC and subnets"). IDs, not names: names map to different zones per account.
EKS_UNSUPPORTED_ZONE_IDS: tuple[str, ...] = ("use1-az3", "usw1-az2", "cac1-az3")


@schema_args
@dataclass(frozen=True)
class LabVpcArgs:
    """Arguments of LabVpc."""

    cluster_name: str
    """The EKS cluster that will use the VPC: names the resources and goes into the subnet tags."""

    cidr_block: str = "10.0.0.0/16"
    """IPv4 range of the VPC, a /16 to /20. It is cut into four equal quarters: two private subnets
    (the nodes' and pods' addresses: the VPC CNI gives every pod a VPC address) and two public ones."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every resource."""

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.cidr_block, strict=True)
        except ValueError as err:
            raise ConfigError("cidr_block", f"{self.cidr_block!r} is not an IPv4 network in CIDR form ({err})") from err
        if not isinstance(network, ipaddress.IPv4Network):
            raise ConfigError("cidr_block", f"{self.cidr_block!r} is not IPv4")
        # AWS accepts VPCs from /16 to /28; below /20 the subnets get too small for pods.
        if not 16 <= network.prefixlen <= 20:
            raise ConfigError("cidr_block", f"prefix length must be between /16 and /20, got /{network.prefixlen}")

    def subnet_cidrs(self) -> tuple[list[str], list[str]]:
        """(private, public) subnet CIDRs, one per zone."""
        quarters = [str(q) for q in ipaddress.ip_network(self.cidr_block).subnets(prefixlen_diff=2)]
        return quarters[:ZONE_COUNT], quarters[ZONE_COUNT : 2 * ZONE_COUNT]


class LabVpc(pulumi.ComponentResource):
    """A VPC for one EKS cluster: public and private subnets in two zones, one NAT gateway."""

    vpc_id: pulumi.Output[str]
    """The VPC's ID."""

    public_subnet_ids: list[pulumi.Output[str]]
    """Public subnets (NAT gateway, internet-facing load balancers), one per zone."""

    private_subnet_ids: list[pulumi.Output[str]]
    """Private subnets (the nodes), one per zone."""

    def __init__(self, name: str, args: LabVpcArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args = from_inputs(LabVpcArgs, args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        # EKS and the AWS load balancer controller find subnets by these tags.
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        zones = aws.get_availability_zones_output(
            state="available",
            exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
            # Local and Wavelength zones cannot hold EKS control-plane subnets.
            filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            opts=pulumi.InvokeOptions(parent=self),
        )

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # EKS nodes and the private API endpoint need DNS hostnames.
            tags={**tags, "Name": f"{args.cluster_name}-vpc"},
            opts=child,
        )
        # The default security group of a new VPC lets members talk to each other; nothing uses it,
        # so take every rule away (CIS AWS Foundations 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={**tags, "Name": f"{args.cluster_name}-default-deny"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{args.cluster_name}-igw"}, opts=child
        )

        private_cidrs, public_cidrs = args.subnet_cidrs()
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for index in range(ZONE_COUNT):
            zone: pulumi.Output[str] = zones.names.apply(functools.partial(_zone, index=index))
            public_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-public-{index}",
                    vpc_id=vpc.id,
                    cidr_block=public_cidrs[index],
                    availability_zone=zone,
                    # Nothing of the lab runs here but the NAT gateway: no automatic public IPs.
                    map_public_ip_on_launch=False,
                    tags={
                        **tags,
                        **cluster_tag,
                        "Name": f"{args.cluster_name}-public-{index}",
                        "kubernetes.io/role/elb": "1",
                    },
                    opts=child,
                )
            )
            private_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-private-{index}",
                    vpc_id=vpc.id,
                    cidr_block=private_cidrs[index],
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={
                        **tags,
                        **cluster_tag,
                        "Name": f"{args.cluster_name}-private-{index}",
                        "kubernetes.io/role/internal-elb": "1",
                    },
                    opts=child,
                )
            )

        nat_ip = aws.ec2.Eip(
            f"{name}-nat-ip", domain="vpc", tags={**tags, "Name": f"{args.cluster_name}-nat"}, opts=child
        )
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=nat_ip.allocation_id,
            subnet_id=public_subnets[0].id,
            connectivity_type="public",
            tags={**tags, "Name": f"{args.cluster_name}-nat"},
            # The gateway only works once the VPC has its internet gateway.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )

        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{args.cluster_name}-public"},
            opts=child,
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags={**tags, "Name": f"{args.cluster_name}-private"},
            opts=child,
        )
        for index in range(ZONE_COUNT):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}",
                subnet_id=public_subnets[index].id,
                route_table_id=public_routes.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}",
                subnet_id=private_subnets[index].id,
                route_table_id=private_routes.id,
                opts=child,
            )

        self.vpc_id = vpc.id
        self.public_subnet_ids = [s.id for s in public_subnets]
        self.private_subnet_ids = [s.id for s in private_subnets]
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )


def _zone(names: Sequence[str], index: int) -> str:
    if len(names) < ZONE_COUNT:
        raise ConfigError("region", f"needs at least {ZONE_COUNT} available zones for EKS, found {names}")
    return names[index]
