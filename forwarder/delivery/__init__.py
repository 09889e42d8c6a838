"""From a log line to Falco: each line checked (validation.py, with jsontext.py), grouped into EventList requests
(batching.py) and posted to Falco's k8saudit webhook until Falco takes them (sender.py)."""
