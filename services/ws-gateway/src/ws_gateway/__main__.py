from ws_gateway.bootstrap import main

main()
