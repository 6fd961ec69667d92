from analytics.bootstrap import main

main()
