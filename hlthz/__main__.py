from hlthz.tools.cli import main

main()
