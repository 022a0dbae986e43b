from interpserve.cli import main

main()
