from tidemark.api.serve import service_main
from tidemark_jobs.app import DEFINITION, create_app
from tidemark_jobs.settings import JobsSettings


def main() -> None:
    service_main(DEFINITION, JobsSettings, create_app)
