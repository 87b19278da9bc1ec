from xueliang.cli.main import main

main()
