from command_api.bootstrap import main

main()
