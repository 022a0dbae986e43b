from bench.compare import main

main()
