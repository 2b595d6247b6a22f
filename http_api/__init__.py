"""segflow's HTTP apps, standing on the shared floor (``segflow/``) beside the consumer and
the uploader: the export API (seed 004) in ``http_api.export``."""
