from session_runner.bootstrap import main

if __name__ == "__main__":  # neonize workers are spawned processes: never run the service on import
    main()
