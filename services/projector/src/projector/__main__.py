from projector.bootstrap import main

main()
