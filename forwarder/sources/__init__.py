"""Where the audit events come from, behind one protocol (source.py, with the factories that build a source).

CloudWatch Logs polled with FilterLogEvents: cloudwatch.py (the calls), ratelimit.py, arrival.py, schedule.py (what
to read when) and reader.py (the reading loop). Or the log group's subscription records read from Kinesis:
kinesis.py (the calls), subscription.py (the records) and kinesis_source.py. Both build their clients with
aws_client.py.
"""
