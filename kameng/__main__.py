from kameng.cli import main

main()
