from tidemark.api.serve import service_main
from tidemark_connector.app import DEFINITION, create_app
from tidemark_connector.settings import ConnectorSettings


def main() -> None:
    service_main(DEFINITION, ConnectorSettings, create_app)
