from beatflow.cli.main import main

main()
