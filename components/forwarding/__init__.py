"""The audit log's way to Falco: AuditForwarder (audit_forwarder.py), the bundled forwarder in the cluster, with its
IAM documents (iam.py), its image build (image.py), its source on disk (source.py) and its pod (workload.py); and
AuditStream (audit_stream.py), the Kinesis Data Stream its Kinesis source reads."""
