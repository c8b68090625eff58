from ispan_cli.app import main

main()
