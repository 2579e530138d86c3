from tidemark.api.serve import service_main
from tidemark_ingest.app import DEFINITION, create_app
from tidemark_ingest.settings import IngestSettings


def main() -> None:
    service_main(DEFINITION, IngestSettings, create_app)
