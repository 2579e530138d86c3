from tidemark.api.serve import service_main
from tidemark_orchestrator.app import DEFINITION, create_app
from tidemark_orchestrator.settings import OrchestratorSettings


def main() -> None:
    service_main(DEFINITION, OrchestratorSettings, create_app)
