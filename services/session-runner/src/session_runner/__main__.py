from session_runner.bootstrap import main

main()
