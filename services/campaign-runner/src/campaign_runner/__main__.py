from campaign_runner.bootstrap import main

main()
