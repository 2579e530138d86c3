from tidemark_ingest.worker.main import main

main()
